"""Presentation, in one place: console tables (``console``), Markdown (``markdown``) and figures (``figures``)
of results. Commands and experiments call these; nothing here computes a metric or loads a model."""
