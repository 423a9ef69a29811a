"""The plugin's components through introzoo's contract checks (shapes, density vs samples, KL vs Monte
Carlo, gradient routing, checkpoint round trip, effect on a training step)."""

import pytest

import introzoo_example
from introzoo.testing import check_component, components_of


@pytest.mark.parametrize("kind,name", components_of(introzoo_example))
def test_contract(kind, name):
    check_component(kind, name)


@pytest.mark.parametrize("options", [{"learn_scale": True}, {"std": 0.3}])
def test_laplace_contract_with_options(options):
    check_component("priors", "laplace", options=options)


def test_student_t_contract_with_heavy_tails():
    check_component("priors", "student-t", options={"df": 1.5})


def test_mmd_contract_with_a_mixture_prior_and_rbf_kernel():
    check_component("regularizers", "mmd", options={"kernel": "rbf", "weight": 3.0}, prior="mog")
