"""The administrator's console: server-rendered pages under `/api/console/…`."""
