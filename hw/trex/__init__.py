"""Hardware of the TReX family (IMC crossbar tiles, attention reuse): the crossbar tile's digital
twin, bit-exact against :mod:`snnforge.golden.trex.xbar`."""
