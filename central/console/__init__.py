"""The officer console: server-rendered pages on the central store, served by `alpr-central serve`.

`central.console.pages.mount(app)` adds the pages and the static assets to the API's app; the
pieces every page shares are in `central.console.web`. See docs/console.md.
"""
