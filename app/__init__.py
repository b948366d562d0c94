"""The frdiff Gradio app: layout and callbacks only; all diffusion maths lives in frdiff."""
