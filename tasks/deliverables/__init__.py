"""Deliverables: every deliverable of a spec from one decode of the married master, verified, published atomically.

``naming`` (run fields, name templates), ``shape`` (what a deliverable takes from the master), ``graph``
(the ffmpeg-python graphs: one decode for all, one deliverable alone as the benchmark's baseline), ``make``
(make, resume, publish) and ``verify`` (one function per aspect). Import names from those modules.
"""
