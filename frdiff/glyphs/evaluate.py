"""Distribution quality of a pipeline, judged by the project's glyph classifier."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..metrics import accuracy, classify, frechet_distance
from .data import sample_glyphs


def balanced_labels(num: int, num_classes: int) -> list[int]:
    """Class ids 0, 1, ..., C-1, 0, 1, ... : every class equally often (up to one)."""
    return [i % num_classes for i in range(num)]


@torch.no_grad()
def generate(pipe, labels: list[int], steps: int, seed: int, batch_size: int = 64,
             progress: bool = True, state=None, **call_kwargs) -> torch.Tensor:
    """Images in [0, 1] for `labels`, in batches; batch b uses seed + b. `state`
    (frdiff.distributed.processes()): the batches are shared between processes and every
    process gets all the images, in order (the same images as one process makes)."""
    from ..distributed import is_main, run_shared

    pipe.set_progress_bar_config(disable=True)
    chunks = list(enumerate(labels[i: i + batch_size] for i in range(0, len(labels), batch_size)))
    bar = tqdm(total=len(chunks), desc="sampling", disable=not progress or not is_main(state))

    def sample(item):
        b, chunk = item
        g = torch.Generator().manual_seed(seed + b)
        images = pipe(chunk, num_inference_steps=steps, generator=g, output_type="pt", **call_kwargs).images.cpu()
        bar.update(1)
        return images

    try:
        return torch.cat(run_shared(state, chunks, sample))
    finally:
        bar.close()


@torch.no_grad()
def evaluate(pipe, classifier, samples: int, steps: int, seed: int = 0, batch_size: int = 64,
             progress: bool = True, state=None, **call_kwargs) -> dict:
    """class_accuracy of balanced conditional samples and their Frechet distance (fd) to
    as many fresh real glyphs, in the classifier's penultimate feature space. `state`: the
    sampling batches shared between processes (see `generate`)."""
    from ..distributed import count

    labels = balanced_labels(samples, len(pipe.labels))
    images = generate(pipe, labels, steps, seed, batch_size, progress, state, **call_kwargs)
    logits, feats = classify(classifier, images)
    real, _ = sample_glyphs(samples, torch.Generator().manual_seed(10_000 + seed))
    _, real_feats = classify(classifier, (real + 1) / 2)
    return {"class_accuracy": accuracy(logits, torch.tensor(labels)),
            "fd": frechet_distance(feats, real_feats), "samples": samples, "steps": steps,
            "seed": seed, "processes": count(state)}


@torch.no_grad()
def classifier_accuracy(classifier, samples: int = 2000, seed: int = 12345) -> float:
    """Accuracy of the classifier on fresh real glyphs (a seed never used in training)."""
    images, labels = sample_glyphs(samples, torch.Generator().manual_seed(seed))
    logits, _ = classify(classifier, (images + 1) / 2)
    return accuracy(logits, labels)
