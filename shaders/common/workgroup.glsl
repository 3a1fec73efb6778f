#ifndef MEGREZ_WORKGROUP_GLSL
#define MEGREZ_WORKGROUP_GLSL
// The workgroup size is never hard-coded: the host picks it from DeviceCaps and passes it as
// specialization constants 0..2 (the pipeline registry's Specialization::workgroup).
layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;
#endif
