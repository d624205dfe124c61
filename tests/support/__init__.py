"""Test tooling shared by the tests and the benchmarks (``benchmarks/faults.py``, ``scale.py``).

It lives under ``tests/`` so it never ships in the wheel; ``tests/`` is on ``sys.path`` for
pytest (``pythonpath`` in pyproject.toml) and the benchmarks put it there themselves.

Nothing here is used by the pipeline itself; most of it exists to break it on purpose:

- :mod:`support.micro`: the micro training config (a step in well under a second).

- :mod:`support.mutate`: hostile DICOM and non-DICOM files made from good ones
  (truncations, flipped bytes, wrong transfer syntax, absurd dimensions, special files).
- :mod:`support.index_fuzz`: a corpus of such files indexed by the real
  ``mammodino index`` command, every manifest row checked against what each case expects.
- :mod:`support.killer`: a pretraining subprocess SIGKILLed at random moments and
  during checkpoint writes, resumed each time.
- :mod:`support.procs`: subprocesses under a file-size limit, peak RSS of a
  whole process tree.
- :mod:`support.scan`: look for strings in every byte written under a folder,
  inside compressed containers too (privacy checks).
"""
