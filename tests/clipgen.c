/* placeholder: being written (clip generation with libavcodec) */
