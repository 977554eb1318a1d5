// Draws each chart table (table[data-chart]) as a bar chart above it, with Chart.js.
// The table stays: it is the chart's data, for screen readers and for reading exact numbers.
"use strict";
(function () {
  if (typeof window.Chart === "undefined") {
    return;
  }
  document.querySelectorAll("table[data-chart]").forEach(function (table) {
    var labels = [];
    var values = [];
    table.querySelectorAll("tbody tr[data-value]").forEach(function (row) {
      labels.unshift(row.getAttribute("data-label"));
      values.unshift(Number(row.getAttribute("data-value")));
    });
    var figure = document.createElement("figure");
    figure.className = "chart";
    var canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", table.getAttribute("data-chart") + " (the table below has the numbers)");
    figure.appendChild(canvas);
    var anchor = table.closest("details") || table;
    anchor.parentNode.insertBefore(figure, anchor);
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: table.getAttribute("data-chart"), data: values, backgroundColor: "#0b5cad" }] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { maxTicksLimit: 14 } } }
      }
    });
    table.setAttribute("data-drawn", "true");
  });
})();
