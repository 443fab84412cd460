"""The dashboard: Cumulo's web console on port 8000 (Horizon's twin), for members and operators.

It is a client of the public APIs only: every page is built from API calls made with the
signed-in user's own token (``client``), so a page never shows what that user could not get
from the API with the same token and role.  Pages are rendered on the server from Jinja2
templates; a small script of our own (``static/app.js``) swaps fragments in place when the
event stream (``events``) says a resource changed, so no page polls row by row.
"""
