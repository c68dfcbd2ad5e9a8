"""RGB uint8 -> the normalised view input, as core/preprocess/color.ts (skimage 0.19's rgb2lab / rgb2ycbcr in
float64, normalised in float64, rounded to float32 once: upstream's order). Constants are color.ts's."""
import numpy as np

LAB_MEAN = np.array([(0 + 100) / 2, (-86.183 + 98.233) / 2, (-107.857 + 94.478) / 2])
LAB_STD = np.array([(100 - 0) / 2, (86.183 + 98.233) / 2, (107.857 + 94.478) / 2])
YCBCR_MEAN = np.array([116.151, 121.08, 132.342])
YCBCR_STD = np.array([109.5, 111.855, 111.964])

_XYZ_FROM_RGB = np.array([[0.412453, 0.35758, 0.180423],
                          [0.212671, 0.71516, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_WHITE = np.array([0.95047, 1.0, 1.08883])
_YCBCR = np.array([[65.481, 128.553, 24.966],
                   [-37.797, -74.203, 112.0],
                   [112.0, -93.786, -18.214]])


def rgb_to_lab(rgb):
    """uint8 [..., 3] -> float64 Lab [..., 3] (L in [0, 100])."""
    c = rgb.astype(np.float64) * (1 / 255)  # skimage's img_as_float multiplies by 1/255
    lin = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = (lin @ _XYZ_FROM_RGB.T) / _WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def rgb_to_ycbcr(rgb):
    c = rgb.astype(np.float64) * (1 / 255)
    out = c @ _YCBCR.T
    out[..., 0] += 16
    out[..., 1:] += 128
    return out


def to_view_input(rgb, view='Lab'):
    """uint8 HWC (or NHWC) -> float32 normalised, same layout."""
    if view == 'Lab':
        x = (rgb_to_lab(rgb) - LAB_MEAN) / LAB_STD
    elif view == 'YCbCr':
        x = (rgb_to_ycbcr(rgb) - YCBCR_MEAN) / YCBCR_STD
    else:
        raise ValueError(f'view must be Lab or YCbCr, got {view}')
    return x.astype(np.float32)
