"""The FUSE layer: translates kernel requests into engine calls and engine errors into errnos."""
