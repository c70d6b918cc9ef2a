"""Data: where labelled texts come from (sources; synthetic: generated sets), cleaning and the splits (splits),
the features a head reads (features, encoders: pretrained weights), cached on disk; errors: DataError."""
