"""Entry point of the frdiff app (also the Hugging Face Space): build the demo, launch it."""

from app.ui import CSS, build_demo

if __name__ == "__main__":
    build_demo().launch(css=CSS)
