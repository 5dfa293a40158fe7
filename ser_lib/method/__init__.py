"""The method: real-time label correction (eq. 6), the losses (eqs. 7-11), the label store that
records corrected labels per epoch, and named experiment settings (presets)."""
