"""Jupyter server settings for the course's formgrader: run `jupyter lab --config=jupyter_server_config.py`.

nbgrader 0.9's formgrader pages strip the trailing "/" of the server's base URL, so the login
cookie the server sets when a page is opened with ``?token=...`` gets no ``Path``: the browser
keeps it for that page's folder only, and the page's own API calls
(``/formgrader/api/...``) go out without it, are redirected to the login page, and the page
stays at "Loading, please wait...". Giving the cookie an explicit path fixes it.
"""
c = get_config()  # noqa: F821 - injected by traitlets when Jupyter loads this file

c.IdentityProvider.cookie_options = {"path": "/"}
