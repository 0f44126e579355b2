"""Hardware of the TT-SNN family (Lee et al., DATE 2024): the engines of the tensor-train conv
datapath, bit-exact against :mod:`snnforge.golden.ttsnn.fixed`."""
