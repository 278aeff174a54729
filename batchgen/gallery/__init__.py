"""`batchgen gallery RUN`: one static page to look at a whole run before training on it.

cards    one card per job, from the state (its file or PostgreSQL) or index.jsonl
assets   poster frames and input thumbnails under RUN/gallery/
page     the HTML: inline CSS and JS, relative links, filters, lazy loading
build    `build_gallery(run_dir)` ties them together
"""

from batchgen.gallery.build import PAGE_NAME, Gallery, build_gallery

__all__ = ["PAGE_NAME", "Gallery", "build_gallery"]
