"""Digital Cinema Packages (SMPTE ST 429 family): picture, sound, track files, CPL/PKL/ASSETMAP."""
