"""``ferlab serve``: a local web page and JSON API for faces, emotions and explanations.

Example:
    >>> from ferlab.serve import create_app, serving                      # doctest: +SKIP
    >>> with serving(create_app("bundled")) as url:                       # doctest: +SKIP
    ...     print(url)
    http://127.0.0.1:40123
"""

from .app import METHODS, create_app, model_info, upload_name
from .limits import ServeLimits, check_photo
from .server import is_loopback, listen, serve, serving

__all__ = ["METHODS", "ServeLimits", "check_photo", "create_app", "is_loopback", "listen",
           "model_info", "serve", "serving", "upload_name"]
