"""The five creative extensions: interpolation, conditional generation, restyling, upscaling, inpainting."""
