"""Reading CT series from disk: MetaImage, NIfTI, NRRD and DICOM (SimpleITK).

``volume`` holds :class:`CtVolume` (the one in-memory form); ``ct`` dispatches a
path to the right reader (``load_ct``); ``metaimage`` checks ``.mhd`` headers
before SimpleITK reads them; ``dicom`` lists and loads DICOM series. Imports
run one way: ``ct`` → ``dicom``/``metaimage`` → ``volume``.
"""
