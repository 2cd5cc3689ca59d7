"""Annotation files: COCO instances, CVAT for images 1.1, LabelMe, mask PNGs; read and written here.

A shared layer: it imports ``segcontract``, ``segops`` and third-party libraries only (numpy,
OpenCV, pycocotools), never a product package nor the store, so it takes and gives plain arrays,
dicts and dataclasses; the product that exports turns its records into them.

The pixel convention (the one every polygon, box and point of this package is in)
----------------------------------------------------------------------------------
Pixel ``(x, y)`` (``mask[y, x]``) covers the square ``[x, x + 1) × [y, y + 1)`` of the continuous
image plane; its centre is ``(x + 0.5, y + 0.5)`` and the image is ``[0, width) × [0, height)``.
A polygon covers the pixels whose centres are inside it.

- COCO polygons and boxes are in these coordinates: pycocotools rasterises them so, and
  ``polygons.polygons_mask`` is that rasteriser, for every format here.
- CVAT for images 1.1 ``<polygon points>`` and ``<box xtl ytl xbr ybr>`` are the same coordinates.
  A ``<mask>`` is pixels, not geometry: the run lengths of the crop of pixels
  ``left .. left + width - 1`` × ``top .. top + height - 1`` (``cvat_rle``).
- YOLO segmentation labels are the same coordinates divided by the image's width and height.
  ultralytics scales them to its training image and fills them there with ``cv2.fillPoly``, which
  also fills the boundary pixels: at most one pixel outward at the training resolution, a quarter
  pixel of its 4× downsampled masks. Vertices moved to pixel centres (half a pixel) would suit
  ``fillPoly`` at scale 1 only and be half a source pixel off at every other scale, so labels are
  written unshifted.
- LabelMe points are the exception, as LabelMe draws them: the point ``(x, y)`` is the centre of
  pixel ``(x, y)`` and a shape covers its boundary pixels (LabelMe's own ``shape_to_mask`` draws
  outline and fill); ``labelme`` rasterises them so. In this convention the point is
  ``(x + 0.5, y + 0.5)``.
- OpenCV contours (``cv2.findContours``) run through boundary-pixel centres, a shape half a pixel
  inside the mask: nothing here writes them as polygons.

Mask → polygon (``polygons.mask_polygons``, the only one) traces pixel edges, so the vertices are
pixel corners and rasterising the polygons gives the mask back pixel for pixel, as long as the mask
has no hole and the polygons were not simplified (only past a point budget, as CVAT's editor slows
down past about a thousand points). Polygons cannot express holes (pycocotools and CVAT take the
union of a segmentation's polygons): a hole comes back filled. Where the exact mask matters (the
store's COCO export, crowd regions, masks with holes), write RLE (``coco``) or a CVAT ``<mask>``;
polygons are what annotators edit and what YOLO labels hold.

Modules: ``outlines`` (pixel-edge tracing), ``polygons`` (mask ↔ polygons), ``coco``,
``cvat_rle``, ``cvat_xml``, ``labelme``, ``mask_png``; ``errors`` holds the one error of a file
that is not what its format says.
"""
