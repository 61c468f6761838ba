"""The ``jaxloss`` command's tools: ``verify``, ``bench``, the precision harness and its mpmath ground truth.

They are outside the library's API; ``import jaxloss`` does not load them.
"""
