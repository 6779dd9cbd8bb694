import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach } from "vitest";

// The lab's 2 cores are shared: give queries time instead of failing on a busy machine.
configure({ asyncUtilTimeout: 5000 });
afterEach(() => cleanup());
