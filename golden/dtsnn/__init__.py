"""Golden models of the DT-SNN spiking ViT (``shared/papers/dtsnn.md``; STAtten from
``shared/papers/trex.md`` section 6): the float model with dynamic time steps and its training
(:mod:`.model`), and its integer export with the forward pass a core runs (:mod:`.integer`)."""
