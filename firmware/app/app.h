/*
 * What codegen.py generates for each image (app_data.c): the model C array, its
 * name, the input vectors and their source, the class labels and the arena.
 */
#ifndef MF_APP_H
#define MF_APP_H

extern const unsigned char g_app_model_data[];
extern const unsigned int g_app_model_data_len;
extern const char mf_app_model_name[];
extern const char mf_app_input_source[];
extern const unsigned int mf_app_vector_count;
extern const unsigned int mf_app_vector_bytes;
extern const unsigned char mf_app_vectors[];
extern const unsigned int mf_app_label_count;
extern const char *const mf_app_labels[];
extern unsigned char mf_app_arena[];
extern const unsigned int mf_app_arena_bytes;

#endif /* MF_APP_H */
