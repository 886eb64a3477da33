"""gunicorn settings of the API container, read from /app at start.

Kept in a file so the image and the tests serve the app the same way; the tests only
override --bind. Nothing is written outside /dev/shm, so the root filesystem can be
read-only.
"""

bind = "0.0.0.0:8000"
workers = 2
worker_tmp_dir = "/dev/shm"
accesslog = "-"
errorlog = "-"
timeout = 30
graceful_timeout = 20
