"""Serving a Wave-U-Net with TensorFlow Serving: the SavedModel export (:mod:`.export`, warm-up records and batching
parameters in :mod:`.production`), how a client cuts songs into pieces (:mod:`.pieces`) and the client
(:mod:`.client`)."""
