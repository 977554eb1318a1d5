"""The Function App's triggers, one blueprint per group: timers, the work queue, Graph's webhooks, admin routes.

Each trigger parses its input, calls one function in `sync/`, and maps the result to an
output; `function_app.py` only registers the blueprints.
"""
