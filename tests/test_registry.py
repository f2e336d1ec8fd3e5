"""pyro_air.core.registry: a misspelt option is named, with the option it was probably meant to be."""
import pytest

from pyro_air import guides
from pyro_air.core.registry import misspelled


def test_a_misspelt_guide_option_is_named_with_the_one_meant():
    """issue 36: --guide-cfg '{"sigm": 0.25}' said only that 'sigma' was missing."""
    with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'sigma'; 'sigm' is not an option: "
                                        r"did you mean 'sigma'\?$"):
        guides.build("denoising", sigm=0.25, x_dim=4, z_dim=2, hidden=[3])


def test_nothing_is_suggested_without_a_close_missing_argument():
    assert misspelled({"x_dim": 4}, "f() missing 1 required positional argument: 'sigma'") == ""
    assert misspelled({"sigm": 1}, "f() got an unexpected keyword argument 'sigm'") == ""
    assert misspelled({"alpah": 1, "sigm": 1}, "f() missing 2 required positional arguments: 'sigma' and 'alpha'") == \
        "; 'alpah' is not an option: did you mean 'alpha'?; 'sigm' is not an option: did you mean 'sigma'?"


def test_a_thing_declares_what_its_registry_reads_and_nothing_else():
    from pyro_air import infer, models
    from pyro_air.core.registry import Registry

    assert guides.GUIDES.declared("gaussian") == {"hidden": True, "conv": "conv-gaussian", "image": False,
                                                  "wraps": None}
    assert guides.GUIDES.declared("semi-amortized") == guides.GUIDES.declares  # declares nothing: the defaults
    assert not infer.OBJECTIVES.declared("miwae")["num_particles"] and infer.OBJECTIVES.declared("iwae")["num_particles"]
    assert models.MODELS.declared("conv-gaussian-vae") == {"likelihood": "gaussian", "net": "conv"}
    registry = Registry("widget", declares={"size": None})
    with pytest.raises(ValueError, match="widget 'w' declares colour, which a widget cannot declare; it may declare: size"):
        registry.register("w", colour="red")
    with pytest.raises(KeyError, match="unknown widget 'v'"):
        registry.declared("v")
