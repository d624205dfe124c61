"""Fault injection shared by the reliability tests (``tests/``) and ``benchmarks/faults.py``.

Nothing here is used by the pipeline itself; it exists to break it on purpose:

- :mod:`mammodino.testing.mutate`: hostile DICOM and non-DICOM files made from good ones
  (truncations, flipped bytes, wrong transfer syntax, absurd dimensions, special files).
- :mod:`mammodino.testing.index_fuzz`: a corpus of such files indexed by the real
  ``mammodino index`` command, every manifest row checked against what each case expects.
- :mod:`mammodino.testing.killer`: a pretraining subprocess SIGKILLed at random moments and
  during checkpoint writes, resumed each time.
- :mod:`mammodino.testing.procs`: subprocesses under a file-size limit, peak RSS of a
  whole process tree.
- :mod:`mammodino.testing.scan`: look for strings in every byte written under a folder,
  inside compressed containers too (privacy checks).
"""
