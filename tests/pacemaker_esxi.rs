//! fence_esxi fenced by a real Pacemaker (placeholder, filled below).
