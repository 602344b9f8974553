"""Tools that are not tests: the benchmarks (``make bench NAME=...``), the screenshots of the
example site (``make screenshots``), django-redis's own suite on a cluster
(``make django-redis-suite``), and the check of the built packages (``make dist``)."""
