"""snnforge: spiking-neural-network accelerator RTL generators with bit-exact golden models."""

__version__ = "0.1.0"
