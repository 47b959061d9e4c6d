"""The ``riim`` command line: composes the commands that ``app/``, ``training/`` and ``export/`` each
define, and runs the steps that span those layers (:mod:`cli.pipeline`, :mod:`cli.job_driver`).

Nothing under ``app/``, ``training/`` or ``export/`` imports this package: it sits on top of them.
"""
