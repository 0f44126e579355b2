"""Simulation of the TReX family: the cocotb regression of the crossbar core."""
