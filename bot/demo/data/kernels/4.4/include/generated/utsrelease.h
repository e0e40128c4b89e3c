#define UTS_RELEASE "4.4.302"
