#define UTS_RELEASE "4.9.337"
