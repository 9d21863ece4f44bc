"""Admission-controller documents rendered from a finished trust policy and trust store.

One module per target (``kyverno_ivp``, ``kyverno_clusterpolicy``, ``ratify_v1``, ``ratify_v2``, ``nirmata``,
``connaisseur``); each takes an ``AdmissionInput`` (``base.py``) and returns a ``Rendered``. Nothing flows back into
the trust policy: ``migrate/policy.py`` builds the input once and writes what every target returns.
"""
