"""A hostile-mail corpus for the web inbox tests (``tests/web/test_hostile.py``).

:mod:`tests.web.hostile.payloads` holds HTML payloads, one per entry, as templates whose
``{{...}}`` tokens become URLs of a counting HTTP server on loopback, or of the stack's
own origin, when a test builds them (:mod:`tests.web.hostile_support`); and the hostile
headers (subjects, display names, attachment file names) of a few whole mails. Nothing
here is fetched from anywhere: every remote URL a payload names is one the test serves
and counts.
"""
