#define UTS_RELEASE "5.4.301"
