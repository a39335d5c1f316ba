"""Continuous training: scheduled runs, the model registry, the promotion gate and rollback.

- :mod:`shrek.lifecycle.registry`: every exported model version, its status and every decision;
- :mod:`shrek.lifecycle.promotion`: offline and fairness gate, then the online A/B verdict;
- :mod:`shrek.lifecycle.rollback`: the serving files and rollback without a restart;
- :mod:`shrek.lifecycle.schedule`: ``shrek schedule``, one run per cron tick;
- :mod:`shrek.lifecycle.snapshots`: the data collected up to a run's time, as MovieLens files;
- :mod:`shrek.lifecycle.simulate`: weekly cycles over MovieLens 100K.
"""
