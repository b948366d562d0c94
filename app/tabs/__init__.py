"""One module per tab of the app: its layout and the wiring of its events (`build`); the
callbacks call the logic modules of `app` and hold no diffusion maths."""
