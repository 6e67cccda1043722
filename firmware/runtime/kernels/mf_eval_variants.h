/*
 * The eval variants of the affine kernels, one line each:
 * MF_EVAL_VARIANT(builtin code, variant, eval function). The kernel's own
 * eval (mf_kernel_list.h) picks one at run time from the op-data record
 * (mf_affine_eval_variant); a prepared image stores the one prepare chose in
 * its op's kernel key (MF_EVAL_KEY), so a firmware's runner table
 * (-DMF_EVAL_LIST, written from the image) links only the variants its model
 * runs. Both kernel sets define the functions of variants without a loop
 * (MF_EVAL_LOOP); the lines with one name the DSP set's loops, which only
 * its prepare chooses. No include guard on purpose: it is expanded once per use.
 */
MF_EVAL_VARIANT(MF_OP_CONV_2D, MF_EVAL_DENSE, mf_conv_eval_dense)
MF_EVAL_VARIANT(MF_OP_CONV_2D, MF_EVAL_SPARSE, mf_conv_eval_sparse)
MF_EVAL_VARIANT(MF_OP_CONV_2D, MF_EVAL_INT4, mf_conv_int4_eval)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_DENSE, mf_depthwise_conv_eval_dense)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_INT4, mf_depthwise_conv_int4_eval)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_SPARSE, mf_depthwise_conv_eval_sparse)
MF_EVAL_VARIANT(MF_OP_FULLY_CONNECTED, MF_EVAL_DENSE, mf_fully_connected_eval_dense)
MF_EVAL_VARIANT(MF_OP_FULLY_CONNECTED, MF_EVAL_FOLDED, mf_fully_connected_eval_folded)
MF_EVAL_VARIANT(MF_OP_FULLY_CONNECTED, MF_EVAL_SPARSE, mf_fully_connected_eval_sparse)
MF_EVAL_VARIANT(MF_OP_FULLY_CONNECTED, MF_EVAL_INT4, mf_fully_connected_int4_eval)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_FC, MF_EVAL_DENSE, mf_depthwise_fc_eval)
MF_EVAL_VARIANT(MF_OP_CONV_2D, MF_EVAL_LOOP(MFD_CONV_GEMM), mfd_conv_eval_gemm)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_LOOP(MFD_DW_CHANNELS), mfd_depthwise_eval_channels)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_LOOP(MFD_DW_ONE_INPUT_CHANNEL), mfd_depthwise_eval_one_input_channel)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_LOOP(MFD_DW_3X3), mfd_depthwise_eval_3x3)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_LOOP(MFD_DW_3X3_NHWC), mfd_depthwise_eval_3x3_nhwc)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_SPARSE_LOOP(MFD_DW_CHANNELS), mfd_depthwise_eval_channels_sparse)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_SPARSE_LOOP(MFD_DW_ONE_INPUT_CHANNEL), mfd_depthwise_eval_one_input_channel_sparse)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_SPARSE_LOOP(MFD_DW_3X3), mfd_depthwise_eval_3x3_sparse)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_CONV_2D, MF_EVAL_SPARSE_LOOP(MFD_DW_3X3_NHWC), mfd_depthwise_eval_3x3_nhwc_sparse)
MF_EVAL_VARIANT(MF_OP_FULLY_CONNECTED, MF_EVAL_LOOP(MFD_FC_PAIRS), mfd_fully_connected_eval_pairs)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_FC, MF_EVAL_LOOP(MFD_DW_CHANNELS), mfd_depthwise_fc_eval_channels)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_FC, MF_EVAL_LOOP(MFD_DW_ONE_INPUT_CHANNEL), mfd_depthwise_fc_eval_one_input_channel)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_FC, MF_EVAL_LOOP(MFD_DW_3X3), mfd_depthwise_fc_eval_3x3)
MF_EVAL_VARIANT(MF_OP_DEPTHWISE_FC, MF_EVAL_LOOP(MFD_DW_3X3_NHWC), mfd_depthwise_fc_eval_3x3_nhwc)
