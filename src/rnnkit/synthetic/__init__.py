"""Generated datasets that need no download: captioning scenes (:mod:`.scenes`), moving shapes
for video classification (:mod:`.motions`) and the writer of their video files
(:mod:`.video_writer`). Every sample is drawn from a seed, so the same seed gives the same data."""
