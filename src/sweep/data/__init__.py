"""Data: where labelled texts come from (sources), cleaning and the splits (splits), and the features a head
reads (features: TF-IDF, frozen encoder embeddings; encoders: pretrained weights), cached on disk."""
