"""Teaching toys: analytic 2-D landscapes, SAM-family trajectories on them."""
