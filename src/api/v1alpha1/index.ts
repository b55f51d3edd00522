export * from "./common";
export * from "./cluster";
export * from "./cluster-defaults";
export * from "./cluster-validation";
export * from "./cidr";
export * from "./validation";
export * from "./versions";
