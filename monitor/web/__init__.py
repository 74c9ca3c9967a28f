"""Web pages for people: the status page (`GET /`) and the HTML helpers the audit report shares.

`add_status_page(app, service)` adds the route; `monitor.web.html` holds the
one escaping function and the table helpers, `monitor.web.charts` the SVG
histograms, `monitor.web.style` the stylesheet (screen and print).
"""

from monitor.web.page import add_status_page, render_status_page

__all__ = ["add_status_page", "render_status_page"]
