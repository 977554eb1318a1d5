"""The local host: `serve`, `demo` and the simulated stack they run on.

Tooling beside the product, like Azure Functions Core Tools: it imports the product and
the fakes; the product never imports it, and the deployment leaves it out (.funcignore).
"""
