"""The solver family comes from the scheduler's class and real algorithm, not from keys that
`from_config` leaves behind: a DPM-Solver++ -> DDIM swap samples exactly as DDIM from the start."""

import inspect

import pytest
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       DPMSolverSinglestepScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler)
from diffusers.utils import logging

from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff.schedulers import is_data_prediction_solver
from stock_pipelines import build

logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
N = 6
DPM = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)


@pytest.mark.parametrize("scheduler, x0", [
    (DPM, True),
    (DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++"), True),
    (DPMSolverMultistepScheduler(algorithm_type="dpmsolver", final_sigmas_type="sigma_min"), False),
    (DPMSolverSinglestepScheduler(), True),
    (DDIMScheduler.from_config(DPM.config), False),
    (EulerDiscreteScheduler.from_config(DPM.config), False),
    (DDPMScheduler.from_config(DPM.config), False),
    (UniPCMultistepScheduler.from_config(DPM.config), False),
    (DDIMScheduler(), False),
])
def test_solver_family_from_the_class(scheduler, x0):
    assert is_data_prediction_solver(scheduler) is x0


def fresh_ddim(config) -> DDIMScheduler:
    """DDIM built from the values a DDIM takes in `config`, and nothing else."""
    accepted = inspect.signature(DDIMScheduler.__init__).parameters
    return DDIMScheduler(**{k: v for k, v in config.items() if k in accepted})


@pytest.mark.parametrize("case", ["sd", "dit"])
def test_dpm_to_ddim_swap_samples_as_ddim_from_the_start(case):
    pipe, kwargs = build(case, scheduler=DPMSolverMultistepScheduler(algorithm_type="dpmsolver++"))
    swapped = DDIMScheduler.from_config(pipe.scheduler.config)
    assert swapped.config.algorithm_type == "dpmsolver++"  # the trap: a leftover key
    fresh = fresh_ddim(swapped.config)  # same betas and spacing, no leftover keys
    assert "algorithm_type" not in fresh.config

    def sample(scheduler):
        pipe.scheduler = scheduler
        with accelerate(pipe, KeyframePolicy.uniform(N, 2), ScoreMixing()) as run:
            images = pipe(num_inference_steps=N, generator=torch.Generator().manual_seed(0),
                          output_type="np", **kwargs).images
        assert run.space == "eps" and run.stats.network_calls_skipped >= 1
        return images

    assert (sample(swapped) == sample(fresh)).all()
