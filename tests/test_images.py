"""Image shapes of flattened data (pyro_air/core/images.py): the most square default, checked given shapes."""
import math

import pytest

from pyro_air.support.images import channels_height_width, image_shape_for


@pytest.mark.parametrize("x_dim,shape", [(784, (28, 28)), (12, (3, 4)), (7, (1, 7)), (1, (1, 1)), (3072, (48, 64))])
def test_the_default_shape_is_the_most_square(x_dim, shape):
    assert image_shape_for(x_dim) == shape


def test_the_default_shape_holds_every_value_and_no_squarer_one_exists():
    for x_dim in range(1, 400):
        h, w = image_shape_for(x_dim)
        assert h * w == x_dim and h <= w
        # no divisor of x_dim lies strictly between h and sqrt(x_dim): (h, w) is the most square factorization
        assert not [d for d in range(h + 1, math.isqrt(x_dim) + 1) if x_dim % d == 0], x_dim


def test_a_given_shape_is_returned_as_a_tuple():
    assert image_shape_for(784, [28, 28]) == (28, 28)
    assert image_shape_for(784, (14, 56)) == (14, 56)
    assert image_shape_for(3072, (3, 32, 32), channels=True) == (3, 32, 32)
    assert image_shape_for(784, (28, 28), channels=True) == (28, 28)


@pytest.mark.parametrize("x_dim,shape,channels,message", [
    (784, (28, 29), False, "image_shape (28, 29) has 812 pixels but x_dim is 784; pass an image_shape whose H * W "
                           "equals x_dim (e.g. (28, 28) for 784)"),
    (3072, (3, 32, 31), True, "image_shape (3, 32, 31) has 2976 values but x_dim is 3072; pass an image_shape whose "
                              "C * H * W equals x_dim (e.g. (28, 28) for 784, (3, 32, 32) for 3072)"),
    (3072, (3, 32, 32), False, "image_shape must be two positive integers (H, W), got (3, 32, 32)"),
    (784, (784,), True, "image_shape must be two positive integers (H, W) or three (C, H, W), got (784,)"),
    (784, (28.0, 28), False, "image_shape must be two positive integers (H, W), got (28.0, 28)"),
    (784, (True, 784), False, "image_shape must be two positive integers (H, W), got (True, 784)"),
    (0, (0, 0), False, "image_shape must be two positive integers (H, W), got (0, 0)"),
])
def test_a_bad_shape_is_one_clear_error(x_dim, shape, channels, message):
    with pytest.raises(ValueError) as err:
        image_shape_for(x_dim, shape, channels=channels)
    assert str(err.value) == message


def test_channels_height_width_gives_grey_images_one_channel():
    assert channels_height_width((28, 28)) == (1, 28, 28)
    assert channels_height_width([3, 32, 32]) == (3, 32, 32)
    assert channels_height_width(image_shape_for(12)) == (1, 3, 4)
