"""Data: readers of real formats, one module each, on a shared base.

``files`` (text, gzip, CSV, bad records, atomic writes), ``vocab`` (the one vocabulary),
``features`` (the one feature cache); ``text`` (char-rnn), ``labelled`` (classification),
``captions`` and ``images``, ``video`` (clips) and ``video_lists``, ``parallel`` and
``subword`` (translation), ``vectors`` (pretrained word vectors), ``download``. Generated
datasets are :mod:`rnnkit.synthetic`'s.
"""
